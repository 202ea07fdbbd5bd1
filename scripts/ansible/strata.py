# strata's stdout callback for ansible stages (shipped in the ansible toolbox, plugins/callback/).
#
# Prints each task's name as it starts and its result when it ends; the output of commands
# (`command`, `shell`, `raw`, `script`) is streamed by the toolbox while they run (through the
# /.strata/tmp/live FIFO made here, which any user's task can write), so it is not printed
# again. A task that fails is followed
# by its werf.yaml task, as werf's callback prints it ("Failed task configuration"), and writes
# the index of that task (its `strata_task_N` tag) to /.strata/state/step, which strata reads
# to name the task and its line.
from __future__ import annotations

DOCUMENTATION = '''
    name: strata
    type: stdout
    short_description: strata's build output
    description: task names and results as they run, for strata's ansible stages
'''

import json
import os
import select
import stat
import sys
import threading

import yaml
from ansible.parsing.yaml.dumper import AnsibleDumper
from ansible.parsing.yaml.objects import AnsibleUnicode
from ansible.plugins.callback import CallbackBase

LIVE = '/.strata/tmp/live'
STEP = '/.strata/state/step'
TAG = 'strata_task_'
STREAMED = tuple(prefix + module for module in ('command', 'shell', 'raw', 'script')
                 for prefix in ('', 'ansible.builtin.', 'ansible.legacy.'))


class ConfigDumper(AnsibleDumper):
    """ansible's YAML, with text of several lines as a block (`|`), as written in werf.yaml."""


def _text(dumper, data):
    return dumper.represent_scalar('tag:yaml.org,2002:str', str(data),
                                   style='|' if '\n' in data else None)


for _type in (str, AnsibleUnicode):
    ConfigDumper.add_representer(_type, _text)


class Relay:
    """The live output: a FIFO at LIVE (writable by every user, so tasks run as another user
    stream too) whose data a thread copies to stdout as it comes."""

    def __init__(self):
        self.lock = threading.RLock()
        self.fd = None
        try:
            # An ansible-playbook run by a task: the outer one's FIFO has its reader already
            # (the open fails without one).
            if stat.S_ISFIFO(os.lstat(LIVE).st_mode):
                os.close(os.open(LIVE, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC))
                return
        except OSError:
            pass
        try:
            if os.path.lexists(LIVE):
                os.unlink(LIVE)
            os.mkfifo(LIVE)
            os.chmod(LIVE, 0o666)
            self.fd = os.open(LIVE, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            # Held open, so the FIFO never reads as ended between two writers.
            self._writer = os.open(LIVE, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            self.fd = None
            return
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            select.select([self.fd], [], [])
            with self.lock:
                self.drain()

    def drain(self):
        """Copies what is in the FIFO to stdout (called with the lock held)."""
        if self.fd is None:
            return
        sys.stdout.flush()
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                return
            while chunk:
                chunk = chunk[os.write(1, chunk):]


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'strata'

    def __init__(self):
        super().__init__()
        self._live = Relay()

    def _print(self, text):
        # What commands printed before comes first.
        with self._live.lock:
            self._live.drain()
            self._display.display(text)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._print('TASK [%s]' % task.get_name().strip())

    def v2_playbook_on_handler_task_start(self, task):
        self._print('HANDLER [%s]' % task.get_name().strip())

    def _details(self, result, failed):
        r = result._result
        lines = []
        streamed = result._task.action in STREAMED
        if failed or not streamed:
            for key in ('stdout', 'stderr'):
                text = r.get(key)
                if text and not (streamed and key == 'stdout'):
                    lines.append(text.rstrip('\n'))
        if result._task.action in ('debug', 'ansible.builtin.debug'):
            # `msg`, or the variable `var` names.
            for key, value in r.items():
                if not key.startswith('_') and key not in ('changed', 'failed'):
                    lines.append(self._text(value) if key == 'msg' else '%s = %s' % (key, self._text(value)))
        elif failed and 'msg' in r:
            lines.append(self._text(r['msg']))
        for key in ('module_stdout', 'module_stderr', 'exception'):
            if failed and r.get(key):
                lines.append(str(r[key]).rstrip('\n'))
        return lines

    @staticmethod
    def _text(value):
        return value if isinstance(value, str) else json.dumps(value, indent=2, default=str)

    def _report(self, result, state, failed=False, item=None):
        head = state
        if item is not None:
            head += ' (item=%s)' % self._get_item_label(result._result)
        rc = result._result.get('rc')
        if failed and rc is not None:
            head += ' (rc=%s)' % rc
        self._print(head)
        for line in self._details(result, failed):
            self._print(line)

    def v2_runner_on_ok(self, result):
        self._report(result, 'changed' if result._result.get('changed') else 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._report(result, 'failed' + (' (ignored)' if ignore_errors else ''), failed=True)
        if not ignore_errors:
            self._failed(result._task)

    def v2_runner_on_unreachable(self, result):
        self._report(result, 'unreachable', failed=True)
        self._failed(result._task)

    def v2_runner_on_skipped(self, result):
        self._print('skipped')

    def v2_runner_item_on_ok(self, result):
        self._report(result, 'changed' if result._result.get('changed') else 'ok', item=True)

    def v2_runner_item_on_failed(self, result):
        self._report(result, 'failed', failed=True, item=True)

    def v2_runner_item_on_skipped(self, result):
        self._print('skipped (item=%s)' % self._get_item_label(result._result))

    def v2_playbook_on_stats(self, stats):
        for host in sorted(stats.processed.keys()):
            s = stats.summarize(host)
            self._print('ok=%d changed=%d failed=%d skipped=%d' % (
                s['ok'], s['changed'], s['failures'] + s['unreachable'], s['skipped']))

    def _failed(self, task):
        # The werf.yaml task is the outermost one: a block's tasks inherit its tag.
        tags = [t for t in (task.tags or []) if isinstance(t, str) and t.startswith(TAG)]
        if tags:
            try:
                with open(STEP, 'w') as f:
                    f.write(tags[0][len(TAG):])
            except OSError:
                pass
        config = self._config(task)
        if config is not None:
            self._print('Failed task configuration:')
            text = yaml.dump(config, Dumper=ConfigDumper, default_flow_style=False,
                             sort_keys=False, allow_unicode=True, width=1000)
            for line in text.rstrip('\n').split('\n'):
                self._print('  ' + line)

    @staticmethod
    def _config(task):
        # The werf.yaml task a failed task is, or is inside of: the playbook's block tagged
        # strata_task_N holds it, as the playbook has it (the config's rendered text).
        node = task
        while node is not None:
            ds = getattr(node, '_ds', None)
            if isinstance(ds, dict) and ds.get('block') and any(
                    isinstance(t, str) and t.startswith(TAG) for t in ds.get('tags') or ()):
                return ds['block'][0]
            node = getattr(node, '_parent', None)
        return None
