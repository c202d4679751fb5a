# The echo server as a twistd application file:
#     twistd -ny examples/echo_server.tac
# Msgr2ServerService closes every connection cleanly when twistd stops.
from twisted.application.service import Application

from msgr2tx.auth import makeServerHandler
from msgr2tx.service import Msgr2ServerService
from msgr2tx.services import EchoReceiver

application = Application("msgr2-echo")
server = Msgr2ServerService(["tcp:13300:interface=127.0.0.1"], [makeServerHandler("none")], EchoReceiver())
server.setServiceParent(application)
