"""The event contract, pure: bytes -> JSON object -> ExecutionEvent (docs/event-contract.md)."""
