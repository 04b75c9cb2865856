# traj-extract.jq: the projection of traj-extract written for jq, used only
# by `make bench-extract` as the speed baseline (no validation of types,
# no env_args fallback for the id, no line numbers).
def nneg: if . == null or . < 0 then null else . end;
{type: "trajectory",
 id: (.ds.instance_id // .docker_image // "?"),
 source: {file: input_filename, line: 0},
 problem_statement,
 steps: [.trajectory_steps | to_entries[] | .key as $i | .value |
   {step_idx: (.step_idx // $i), thought, action, observation,
    env_exec_time, llm_exec_time,
    token_usage_prompt: (.token_usage_prompt | nneg),
    token_usage_completion: (.token_usage_completion | nneg),
    token_usage_total: (.token_usage_total | nneg)}],
 meta: {instance_id: .ds.instance_id, docker_image, exp_name, exit_reason,
        reward, max_steps, num_steps: (.trajectory_steps | length)}}
+ (if (.agent_args.system_prompt | type) == "string"
      and (.agent_args.instance_prompt | type) == "string"
   then {prompts: {system_prompt: .agent_args.system_prompt,
                   instance_prompt: .agent_args.instance_prompt}}
   else {} end)
