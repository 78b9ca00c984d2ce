"""The poll's web page, for guests by their personal link and for members as a Mini App."""
