"""Output for people: plan and report renderers (text, markdown, JSON) and masking of members."""
