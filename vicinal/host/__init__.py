"""The machine a command runs on: CPU threads, the allocator policy, start-up costs avoided, and which
device a run can use. Applied by the command line (and the Python API) before work starts."""
