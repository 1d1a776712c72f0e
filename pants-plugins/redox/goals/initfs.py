"""(in progress)"""


def rules():
    return []
