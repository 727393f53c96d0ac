"""The self-training loop: the stages the command line runs, composed and tracked."""
