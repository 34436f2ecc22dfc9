"""The planning MILPs: build a model from demand, solve it, write the plan back as plain arrays.

    deploy_plan.py  `DeployPlan`: the plain arrays every deployment method writes back
    greedy.py       BS deployment without a solver: checks, feasibility pre-checks, the exact greedy
    deploy.py       BS deployment (paper Eq. 12, defensible form): full MILP, compact MILP, `solve_deployment`
    sleep.py        RRU sleep control (paper Eq. 13, defensible form): MILP per cell/BS, exact DP, baselines
    solve.py        `SolverOptions` (method, solver, time limit, gap, threads), solver choice (bundled CBC,
                    HiGHS) and the true status of a solve (time limits, gaps)

Replay (`planning.replay`) and reports never import this package.
"""
