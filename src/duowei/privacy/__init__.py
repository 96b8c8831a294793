"""Personal data protection (PIPL; JR/T 0171-2020): envelope encryption at rest, blind indexes,
masking wherever data is shown, a log filter, consents, data-subject export and anonymization,
and a scanner that proves no plaintext ID number or phone number sits in a file."""
