"""
fineweb_edu.py: FineWeb-Edu (HuggingFaceFW/fineweb-edu, its 10B-token sample by default) -> data/fineweb_edu/
train_*.bin and val_*.bin; the first --val-docs documents of the stream are the validation set.

usage: python3 dev/data/fineweb_edu.py [--max-docs N] [--val-docs N] [--model FILE.model] [--out DIR]
       FINEWEB_CONFIG=sample-100BT python3 dev/data/fineweb_edu.py    (sample-10BT, sample-100BT, sample-350BT)
"""
import os

from hf_tokenize import prepare

if __name__ == "__main__":
    config = os.environ.get("FINEWEB_CONFIG", "sample-10BT")
    prepare("fineweb_edu", __doc__, "HuggingFaceFW/fineweb-edu", config, "train", None, val_docs=50_000)
