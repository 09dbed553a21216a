"""What a run leaves behind: result files (:mod:`.results`), the declarations written into them
(:mod:`.declarations`), the per-example outcomes beside them (:mod:`.outcomes`) and the index of a
results folder (:mod:`.index`). The board reads only this; nothing here imports torch."""
