"""Host-side chores the scripts call: results records, the sweep runner, the report
writer. Nothing here runs inside jit, and nothing here calls back into a script."""
