"""The base of the messages tasks exchange (docs/messages.md)."""

from pydantic import BaseModel, ConfigDict


class Message(BaseModel):
    """A message between tasks: immutable, typed, and lenient about keys it does not know
    (a newer sender's), as the hand-written readers it replaces were."""

    model_config = ConfigDict(frozen=True, extra="ignore")
