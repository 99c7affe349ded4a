"""The benchmark harness: MiniToolAI against the gateways a user would pick instead.

Entry point: ``python -m bench`` (see ``bench/README.md``). Modules, each one job:
``upstream`` the fake OpenAI server, ``loadgen`` / ``wrk`` the load generators, ``contenders``
how each gateway is started, ``runner`` one measured cell, ``ledger_bench`` the ledger on its
own, ``profiling`` py-spy summaries, ``report`` the Markdown and chart, ``cli`` the run.
"""
