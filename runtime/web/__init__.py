"""The central station in the browser (``mrm-edge monitor --web``): ``config`` (the address
and the token rule), ``state`` (what the page shows, fed by the web sink), ``decimate``
(strips at 100 Hz, peaks kept), ``server`` (Starlette + uvicorn on its own thread, one
bounded queue per browser), ``static/`` (the page; every asset served by the monitor
itself). Needs the ``web`` extra."""
