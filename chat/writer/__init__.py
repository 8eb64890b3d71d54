"""The group-commit writer: every new message of a process is stored by one writer, in batches.

Sends from every connection and REST call of the process join one queue. A writer thread, with
one long-lived database connection, takes what is queued (up to ``WRITER_BATCH`` sends) and
stores it in ONE transaction (docs/architecture.md, "The path of a message"):

1. the batch's rooms are locked in id order (their seqs are assigned under the lock);
2. one statement each reads, for the whole batch: the authors' memberships (and, for private
   rooms, their room memberships), the idempotency keys already used, the last message of each
   author in a slow-mode room, the communities' automod terms, the messages replied to and
   the users named in mentions;
3. each send is checked in arrival order (membership, idempotency, body, mute, slow mode,
   automod, reply), then the per-user rate is taken for the sends that passed, in one go;
4. only then are seqs assigned, so a refused send never leaves a gap; the messages and their
   ``message.new`` events go in as two multi-row inserts, each room's head moves in one
   statement, and the transaction commits;
5. the batch's events are handed to the fan-out tier in one publish, and the senders answered.

A batch that fails as a whole (a constraint, a lost connection) is rolled back and stored
again message by message, so one bad message never fails its neighbours; a rollback assigns
no seq. The checks are the same as a lone post's (``chat.services.messages``): the same errors
in the same order, a repeated ``client_msg_id`` answered with the original message whatever
the rest says now. A caller already inside a transaction (a service composing several acts, a
test) stores its send in that transaction through the same statements, without the thread.
"""

from chat.writer.batch import Outcome, store_batch
from chat.writer.sends import MAX_BODY, Send, Stored, clean_body, mention_names
from chat.writer.thread import Writer, stop_writer, submit, writer

__all__ = [
    "MAX_BODY",
    "Outcome",
    "Send",
    "Stored",
    "Writer",
    "clean_body",
    "mention_names",
    "stop_writer",
    "store_batch",
    "submit",
    "writer",
]
