"""Alert rules, evaluator and redesign scorecards (to come; see DESIGN.md)."""
