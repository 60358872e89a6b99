"""Readers and writers for the file formats nucflow consumes and produces."""
