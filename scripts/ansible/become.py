# strata's become plugin (shipped in the ansible toolbox as plugins/become/strata.py, the
# toolbox's default become method): runs the task's command as `become_user` through the
# toolbox's python (libexec/become-user), so an image needs no sudo. `become_method: sudo`
# (or su, ...) uses the image's own tool instead.
from __future__ import annotations

DOCUMENTATION = """
    name: strata
    short_description: switch user with strata's ansible toolbox
    description:
        - Runs the command as become_user, with that user's groups from the image's /etc/passwd
          and /etc/group, HOME set to the user's home (as sudo -E -H); needs nothing in the image.
    options:
        become_user:
            description: User you 'become' to execute the task
            default: root
            ini:
              - section: privilege_escalation
                key: become_user
            vars:
              - name: ansible_become_user
            env:
              - name: ANSIBLE_BECOME_USER
            keyword:
              - name: become_user
"""

from ansible.module_utils.six.moves import shlex_quote
from ansible.plugins.become import BecomeBase

TOOLBOX = '/.strata/ansible'


class BecomeModule(BecomeBase):
    name = 'strata'

    def build_become_command(self, cmd, shell):
        # No success marker: nothing prompts, and raw output stays the command's own.
        if not cmd:
            return cmd
        exe = getattr(shell, 'executable', None) or '/bin/sh'
        return ' '.join([
            TOOLBOX + '/usr/bin/python3.11', '-I', TOOLBOX + '/libexec/become-user',
            shlex_quote(self.get_option('become_user') or 'root'), exe, '-c', shlex_quote(cmd)])
