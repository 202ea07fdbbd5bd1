keep.c
