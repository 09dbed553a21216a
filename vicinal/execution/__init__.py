"""Running a suite: the suite file (:mod:`.suite`), the validated plan and each run's identity
(:mod:`.plan`, :mod:`.identity`), one run as a self-contained job (:mod:`.jobs`), and what executes the
jobs (:mod:`.executors`: in this process, or on Ray, :mod:`.ray`)."""
