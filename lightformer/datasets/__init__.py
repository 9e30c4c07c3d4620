"""Getting a dataset: its sources and pins (sources.py), downloads and checksums (download.py,
integrity.py, archives.py, hub.py), the fetch/verify/mirror/prepare steps for every kind of
dataset in one table (pipeline.py), each dataset's fairseq recipe (iwslt14.py, wmt14.py,
cnndm.py, ddtp.py, corpus.py for your own, glue.py), text processing (text.py) and the embedded
fixtures (fixtures.py). What training reads of the result is :mod:`lightformer.data`."""
