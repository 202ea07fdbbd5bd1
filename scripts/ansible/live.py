

# strata (scripts/ansible-toolbox.sh appends this to ansible's module_utils/basic.py, whose
# run_command calls it with each chunk of a command's output it reads).
def _strata_live(chunk, _sink=[]):
    """Copies command output to the build's output as it comes."""
    if not _sink:
        try:
            _sink.append(os.open('/.strata/tmp/live', os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC))
        except OSError:
            _sink.append(None)
    if _sink[0] is not None:
        try:
            os.write(_sink[0], chunk)
        except OSError:
            pass
