"""Database problems, phrased for the person at the terminal: what is wrong and what to do."""


class DatabaseProblem(Exception):
    """A database that cannot be used. str() is a one-line message naming the fix."""


class DatabaseUnreachable(DatabaseProblem):
    pass


class DatabaseCorrupt(DatabaseProblem):
    pass


class DatabaseReadOnly(DatabaseProblem):
    pass


class SchemaTooNew(DatabaseProblem):
    pass
