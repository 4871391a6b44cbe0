"""Files a person opens: training curves, confusion matrices, tables."""
