"""Models vicinal did not train: evaluating a given model under a suite's protocol (:mod:`.given`), and
RobustBench's model zoo in and out (:mod:`.robustbench`)."""
