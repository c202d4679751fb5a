# Server dispatchers selectable with "twistd msgr2 --service NAME".
from msgr2tx.services import EchoServiceFactory, InspectServiceFactory

echo = EchoServiceFactory()
inspect = InspectServiceFactory()
