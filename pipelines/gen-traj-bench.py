#!/usr/bin/env python3
"""gen-traj-bench.py: write a large, realistic R2E-Gym trajectory JSONL file.

Usage: gen-traj-bench.py [N_LINES [SEED]] > FILE

Each line has the shape of R2E-Gym's Trajectory.model_dump_json() (the
fields and their order as in samples/trajectories.jsonl) and the byte mix of
real files: about 130 KB a line, most of it in `ds` (present twice, at the
top level and inside env_args, with a large JSON-in-a-string
`parsed_commit_content`) and in `test_output`; about 5% of the bytes are
backslash escapes and a few hundred are non-ASCII.  The text is synthetic.
The output depends only on N_LINES and SEED (a private LCG, not Python's
random module, so it does not change between Python versions).
"""
import json
import sys

WORDS = ("the of and to in is for on with that this value return self def "
         "import class none true false path file line test error raise "
         "config parser buffer index offset length result token window "
         "resolver handler request response stream cache bucket record "
         "schema column header row field format encode decode").split()
UNICODE = ["café", "naïve", "→", "—", "résumé", "Δt", "µs", "✓"]


class Lcg:
    def __init__(self, seed):
        self.s = (seed * 6364136223846793005 + 1442695040888963407) % 2**64

    def next(self, n):
        self.s = (self.s * 6364136223846793005 + 1442695040888963407) % 2**64
        return (self.s >> 33) % n


def words(r, n):
    out = []
    for _ in range(n):
        k = r.next(100)
        if k == 0:
            out.append(UNICODE[r.next(len(UNICODE))])
        else:
            out.append(WORDS[r.next(len(WORDS))])
    return " ".join(out)


def code_lines(r, n):
    lines = []
    for i in range(n):
        ind = "    " * r.next(3)
        lines.append("%s%s = '%s'(%d)" % (ind, WORDS[r.next(len(WORDS))],
                                          words(r, 3 + r.next(5)), i))
    return "\n".join(lines)


def step(r, i, prompt):
    thought = "<think>\n" + words(r, 60 + r.next(80)) + "\n</think>"
    if r.next(2):
        action = ("<function=execute_bash>\n  <parameter=cmd>cd /repo && python -m pytest "
                  "-q tests/test_%s.py</parameter>\n</function>" % WORDS[r.next(len(WORDS))])
        obs = ("Exit code: 0\nExecution output of [execute_bash]:\n[STDOUT]\n\n%s\n\n[STDERR]\n\n\n"
               % code_lines(r, 8 + r.next(16)))
    else:
        action = ("<function=file_editor>\n  <parameter=command>view</parameter>\n"
                  "  <parameter=path>/repo/pkg/%s.py</parameter>\n</function>"
                  % WORDS[r.next(len(WORDS))])
        body = "\n".join("%6d\t%s" % (k + 1, l)
                         for k, l in enumerate(code_lines(r, 8 + r.next(16)).split("\n")))
        obs = "Execution output of [file_editor]:\n" + body + "\n"
    comp = 50 + r.next(600)
    llm = round(0.5 + r.next(40000) / 10000.0, 6)
    env = round(0.05 + r.next(20000) / 10000.0, 6)
    return {"step_idx": i, "thought": thought, "action": action, "observation": obs,
            "done": False, "info": {"total_time": env},
            "token_usage_prompt": prompt, "token_usage_completion": comp,
            "token_usage_total": prompt + comp, "llm_exec_time": llm,
            "env_exec_time": env, "total_step_time": round(llm + env, 6),
            "total_time_traj": 0.0, "step_count": i + 1}


def dataset_row(r, iid, image, problem):
    diffs = []
    for k in range(6):
        old = code_lines(r, 60)
        diffs.append({"old_file_content": old, "new_file_content": old + "\n# fixed",
                      "header": {"file": {"path": "pkg/mod%d.py" % k}}})
    commit = json.dumps({"file_diffs": diffs}, indent=4)
    return {"repo_name": "pkg", "docker_image": image, "commit_hash": iid[-8:] * 5,
            "problem_statement": problem,
            "prompt": [{"content": "placeholder", "role": "user"}],
            "parsed_commit_content": commit,
            "modified_files": ["pkg/mod0.py", "tests/test_mod0.py"],
            "relevant_files": ["pkg/mod0.py"], "num_non_test_files": 1,
            "expected_output_json": json.dumps({"test_%d" % k: "PASSED" for k in range(30)},
                                               indent=4),
            "instance_id": iid}


def trajectory(r, n):
    iid = "pkg_%08x" % r.next(2**32)
    image = "example/pkg_final:" + iid[-8:] * 5
    problem = "[ISSUE]\n**Title:** " + words(r, 10) + "\n\n" + words(r, 150) + "\n[/ISSUE]"
    steps = []
    prompt = 2500
    total = 0.0
    for i in range(14 + r.next(12)):
        s = step(r, i, prompt)
        total = round(total + s["total_step_time"], 6)
        s["total_time_traj"] = total
        prompt += s["token_usage_completion"] + len(s["observation"]) // 3
        steps.append(s)
    steps[-1]["done"] = True
    ds = dataset_row(r, iid, image, problem)
    sys_prompt = "You are a coding agent. " + words(r, 600)
    inst_prompt = "Fix the issue below.\n<issue>\n{problem_statement}\n</issue>\n" + words(r, 200)
    test_output = "\n".join("tests/test_%s.py::test_%d %s" % (WORDS[r.next(len(WORDS))], k,
                                                             ("PASSED", "FAILED")[r.next(8) == 0])
                            for k in range(400))
    return {"trajectory_steps": steps, "problem_statement": problem, "docker_image": image,
            "exp_name": "bench-%d" % n,
            "env_args": {"ds": ds, "repo_path": None, "docker_image": None},
            "agent_args": {"system_prompt": sys_prompt, "instance_prompt": inst_prompt,
                           "command_files": ["./tools/file_editor.py"], "llm_name": "m",
                           "llm_base_url": "http://localhost:8000/v1", "demo_file": "",
                           "use_demo": False, "other_args": {"max_retries": 3}},
            "ds": ds, "max_steps": 40, "max_steps_absolute": 50, "max_token_limit": 65536,
            "max_llm_time": 7200, "max_exec_time": 90, "max_total_time": 50000,
            "exit_reason": "agent", "output_patch": "diff --git a/x b/x\n" + code_lines(r, 40),
            "reward": float(r.next(2)), "reward_calc_time": 12.5, "test_output": test_output,
            "custom_test_outputs": {}, "regression_test_output": None, "verifier_prob": None,
            "reproduction_test_scores": []}


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    r = Lcg(seed)
    out = sys.stdout
    for k in range(n):
        out.write(json.dumps(trajectory(r, k), separators=(",", ":"), ensure_ascii=False))
        out.write("\n")


if __name__ == "__main__":
    main()
