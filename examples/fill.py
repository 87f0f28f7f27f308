def is_even(n):
    return <FILL>


print(is_even(4))
