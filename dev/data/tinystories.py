"""
tinystories.py: TinyStories (roneneldan/TinyStories, about 2.1M short stories) -> data/tinystories/
train_*.bin from its train split and val_*.bin from its validation split, with the LLaMA tokenizer.

usage: python3 dev/data/tinystories.py [--max-docs N] [--val-docs N] [--model FILE.model] [--out DIR]
"""
from hf_tokenize import prepare

if __name__ == "__main__":
    prepare("tinystories", __doc__, "roneneldan/TinyStories", None, "train", "validation", val_docs=None)
