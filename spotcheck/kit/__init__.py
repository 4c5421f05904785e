"""The service kit: what the node (``prover``) and the challenger are both built from.

One module per job, so a reader of one service knows where the other does the same thing:

==========  ===========================================================================
``db``      SQLite: open a service database, one write-transaction helper, one
            state-change rule (an illegal change raises :class:`db.IllegalTransition`)
``loop``    the run loop: stop event, SIGINT/SIGTERM, backoff on failed steps, interval
``ready``   the readiness rule: ready = the last chain step succeeded recently
``serve``   a FastAPI app served by uvicorn in a thread
``logs``    logging set-up: structured fields (``extra=``) printed as key=value, or JSON
==========  ===========================================================================
"""
