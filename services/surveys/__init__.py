"""The surveys service: 1-10 follow-up surveys, their metrics and the closed loop."""
