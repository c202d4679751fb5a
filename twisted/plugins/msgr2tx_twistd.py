# The "twistd msgr2" subcommand; msgr2tx.tap is imported only when used.
from twisted.application.service import ServiceMaker

msgr2 = ServiceMaker(
    "msgr2tx server",
    "msgr2tx.tap",
    "A Ceph messenger v2 (msgr2) server",
    "msgr2",
)
