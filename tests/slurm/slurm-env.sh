# placeholder: sourced by tests/slurm/test_slurm.sh
