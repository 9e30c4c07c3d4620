"""Tables and figures from the measurements the other stages write."""
