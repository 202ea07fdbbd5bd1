lib.c
