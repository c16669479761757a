"""``slipway import``: an App Runner account recreated on this host, through the API.

    account.py   what one App Runner endpoint holds (the account, or this host), read
                 through its API; the account's credentials and their errors
    plan.py      pure rules: what to create, what is there already, what cannot come
    apply.py     the plan carried out item by item; an item that fails is undone
    images.py    ECR images copied to this host's registry (``--push-images``)

The source and the target both speak App Runner's API, so one reader serves both, and
the import is a client of this host like any other: it never opens the store.
"""
