"""The artifact bundle contract shared by ``export`` (writer), ``verify`` and ``profile`` (readers)."""
