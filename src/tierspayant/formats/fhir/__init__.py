"""FHIR R4 resources to and from the platform's values (the ``/fhir`` interface's format).

:mod:`.systems` names the identifier systems, code systems and extension URLs;
:mod:`.read` turns a request resource (parsed and checked by the R4B models of
``fhir.resources``) into plain values; :mod:`.write` renders answers as FHIR JSON. No
module here looks anyone up: the entry point hands the values to the same services as
``/v1``. The mapping, element by element, is in ``docs/fhir.md``.
"""
