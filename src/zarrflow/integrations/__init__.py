"""What connects zarrflow to the rest of the ecosystem, built on the public API.

- :mod:`.xarray_backend`: the ``engine="zarrflow"`` xarray backend.
- :mod:`.dataframe`: the Dask DataFrame bridge (``to_dask_dataframe`` / ``from_dask_dataframe``).
- :mod:`.copying`: copying arrays and groups between stores and formats.
- :mod:`.statistics`: streaming per-array statistics.

Each module is imported on demand: xarray and pandas stay optional.
"""
