"""The visible pass-through used until playbooks are loaded: everything goes to people to triage."""

from __future__ import annotations

from bot.models import Classification, ContactSnapshot, Decision, Mention, Reason


class TriageOnly:
    """Decides nothing: sends each mention to the triage channel and says why."""

    def __init__(self, *, channel: str) -> None:
        self.channel = channel

    def decide(
        self, mention: Mention, classification: Classification, contact: ContactSnapshot
    ) -> Decision:
        """No action or priority; the reasons state that no playbook judged the mention."""
        reasons = [
            Reason(
                factor="playbooks",
                value="none loaded",
                effect=f"not judged; sent to {self.channel} for a person to triage",
            )
        ]
        if not classification.classified:
            reasons.append(
                Reason(factor="classification", value="unclassified", effect="no labels to act on")
            )
        return Decision(
            action=None, priority=None, channel=self.channel, playbook=None, reasons=tuple(reasons)
        )
