"""One contract suite for every Store adapter."""
