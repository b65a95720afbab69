"""The access log: method, route template, status and duration; nothing the URL held.

gunicorn's default line quotes the request line, query string included, so keys sent as
`?api_key=` and the user ids in paths were written to the log. Engram's line holds the client
address, the time, the method, the route template the request matched (such as
`/v1/users/<user_id>/features`; `<unmatched>` for none; `-` for a request gunicorn refused before
the app saw it), the status, the bytes answered and the duration in milliseconds.
"""

from __future__ import annotations

from flask import Flask, Response, request

ROUTE_KEY = "engram.route"  # the WSGI environ key the app writes and the log format reads
FORMAT = '%(h)s %(t)s "%(m)s %({' + ROUTE_KEY + '}e)s" %(s)s %(B)s %(M)sms'


def init_app(app: Flask) -> None:
    """Record each request's route template where the server's access log reads it."""

    @app.after_request
    def route_template(response: Response) -> Response:
        rule = request.url_rule
        request.environ[ROUTE_KEY] = rule.rule if rule is not None else "<unmatched>"
        return response
