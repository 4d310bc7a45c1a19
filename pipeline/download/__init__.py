"""Resumable, checksummed, atomic download of one file over HTTP (data archives, model weights).

The official files come over plain HTTP from a university server that drops connections, so:

* bytes go to a partial file beside the destination (``<name>.part``) that survives a crash or
  Ctrl-C; the next attempt, in this run or a later one, resumes it with an HTTP ``Range`` request;
* a server that ignores ``Range`` (answers 200), or answers with a range that does not start
  where we asked, makes us restart from zero instead of appending the wrong bytes;
* connection errors, timeouts, truncated bodies, 408, 429 and 5xx are retried with exponential
  back-off; other 4xx are not, since asking again will not change the answer;
* the checksum (MD5 or SHA-256; plain HTTP gives no integrity check) is verified on the bytes on
  disk before the partial file is renamed onto the destination, so the destination is either
  absent or correct (``pipeline.io.atomic_path`` does not fit here: its random name and
  delete-on-error are what resuming must avoid; the same-directory ``os.replace`` gives the
  same atomicity);
* when the host cannot be reached, the error says where to put a copy fetched by other means,
  and the next call verifies that copy and uses it without touching the network.
"""

from pipeline.download.fetch import ChecksumError, fetch, partial_path
from pipeline.download.transfer import DownloadError

__all__ = ["ChecksumError", "DownloadError", "fetch", "partial_path"]
