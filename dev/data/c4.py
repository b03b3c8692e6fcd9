"""
c4.py: C4 English (allenai/c4, config "en", the corpus of the GaLore and Grass LLaMA runs) -> data/c4/
train_*.bin from its train split and val_*.bin from the first --val-docs documents of its validation split.

usage: python3 dev/data/c4.py [--max-docs N] [--val-docs N] [--model FILE.model] [--out DIR]
"""
from hf_tokenize import prepare

if __name__ == "__main__":
    prepare("c4", __doc__, "allenai/c4", "en", "train", "validation", val_docs=50_000)
