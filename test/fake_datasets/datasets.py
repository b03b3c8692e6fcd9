"""
A stand-in for the Hugging Face `datasets` package (its load_dataset, streaming only) so that test/data_scripts.py
can run dev/data's download scripts without a network: every (dataset, config, split) streams
$FAKE_DATASETS_DOCS synthetic documents, given by `document`, and every call is appended to $FAKE_DATASETS_LOG.
"""
import os


def document(dataset, split, i):
    """Document i of a split: ASCII, accented letters, a non-BMP character, and a length that varies with i."""
    return "%s %s document %d: café naïve \U0001F600\n" % (dataset, split, i) + "word " * (i % 7) + "end."


def load_dataset(path, name=None, split=None, streaming=False):
    with open(os.environ["FAKE_DATASETS_LOG"], "a") as log:
        log.write("%s %s %s streaming=%s\n" % (path, name, split, streaming))
    n = int(os.environ["FAKE_DATASETS_DOCS"])
    return ({"text": document(path, split, i)} for i in range(n))
