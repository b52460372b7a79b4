# attack: does not parse
# expect: static
# cause: syntaxerror
def compute_reward(s)
    return 0
