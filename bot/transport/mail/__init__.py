"""The e-mail transport: invitations that land in calendars (iMIP), sent over SMTP."""
