"""The event types the vault emits."""

RADAR_CARD_TESTING_SUSPECTED = "radar.card_testing_suspected"

EVENT_TYPES = frozenset({RADAR_CARD_TESTING_SUSPECTED})
