# Second reference fit for alsfrs.fit_joint: rstanarm's stan_jm on a simulated cohort.
#
# Run from the repository root (after
# `python tests/reference/make_joint_data.py --n 300 --seed 20251125`):
#
#     OPENBLAS_NUM_THREADS=1 Rscript tests/reference/joint_rstanarm.R
#
# Fits the same joint model as tests/test_joint_validation.py with stan_jm
# (rstanarm 2.21; Stan NUTS, 2 chains x iter = 1,000, i.e. 500 warm-up + 500 draws
# per chain, run one after the other on one core; the defaults otherwise):
#   longitudinal: alsfrs_r ~ months * (anxiolytic + hypnotic + antidepressant +
#                 onset_site) + age_at_dx + sex + (months | patient_id), Gaussian
#   event:        Surv(months_to_death_imv, death_imv) ~ anxiolytic + hypnotic +
#                 antidepressant + age_at_dx + onset_site
#   association:  "etavalue" (the current value of the linear predictor, which for a
#                 Gaussian identity model is the true current ALSFRS-R)
#   baseline:     "bs" (B-spline of the log baseline hazard, df = 6: stan_jm's default);
#                 cumulative hazard by 15-node Gauss-Kronrod quadrature (default)
#   priors:       rstanarm's defaults (autoscaled normals; they differ from alsfrs').
# Writes joint_fixtures/rstanarm_<n>.json: posterior mean, SD, 2.5/5/95/97.5%
# quantiles, bulk ESS and R-hat (rstan's rank-normalised versions) of every event
# coefficient and the association, the longitudinal fixed effects and the
# residual SD; the minimum bulk ESS over all parameters (random effects included)
# and over the ones compared; divergences; the wall time; package versions.
# The Python tests read only this file.
#
# Environment: JOINT_N (default 300), JM_ITER (default 1000), JM_CHAINS (default 2),
# JM_OUT (default joint_fixtures/rstanarm_<n>.json; set it for smoke runs).

suppressPackageStartupMessages({
  library(rstanarm)
  library(survival)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = FALSE)
file_arg <- sub("^--file=", "", args[grep("^--file=", args)])
here <- if (length(file_arg)) dirname(normalizePath(file_arg)) else "tests/reference"
data_dir <- file.path(here, "data")
out_dir <- file.path(here, "joint_fixtures")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
n_patients <- as.integer(Sys.getenv("JOINT_N", "300"))
n_iter <- as.integer(Sys.getenv("JM_ITER", "1000"))
n_chains <- as.integer(Sys.getenv("JM_CHAINS", "2"))
out_file <- Sys.getenv("JM_OUT", file.path(out_dir, sprintf("rstanarm_%d.json", n_patients)))
seed <- 20251125L

visits <- read.csv(file.path(data_dir, sprintf("joint_visits_%d.csv", n_patients)))
pats <- read.csv(file.path(data_dir, sprintf("joint_patients_%d.csv", n_patients)))
for (d in c("visits", "pats")) {
  x <- get(d)
  x$sex <- factor(x$sex, levels = c("F", "M"))
  x$onset_site <- factor(x$onset_site, levels = c("spinal", "bulbar"))
  x$patient_id <- factor(x$patient_id)
  assign(d, x)
}
visits <- visits[order(visits$patient_id, visits$months), ]
pats <- pats[order(pats$patient_id), ]

t0 <- proc.time()[["elapsed"]]
fit <- stan_jm(
  formulaLong = alsfrs_r ~ months * (anxiolytic + hypnotic + antidepressant + onset_site) +
    age_at_dx + sex + (months | patient_id),
  dataLong = visits,
  formulaEvent = Surv(months_to_death_imv, death_imv) ~ anxiolytic + hypnotic +
    antidepressant + age_at_dx + onset_site,
  dataEvent = pats,
  time_var = "months", id_var = "patient_id",
  assoc = "etavalue", basehaz = "bs",
  chains = n_chains, iter = n_iter, cores = 1, seed = seed, refresh = 0)
t1 <- proc.time()[["elapsed"]]

arr <- as.array(fit$stanfit)              # iterations x chains x parameters
pars <- dimnames(arr)[[3]]
pars <- pars[pars != "lp__"]
ess <- vapply(pars, function(p) rstan::ess_bulk(arr[, , p]), numeric(1))
rhat <- vapply(pars, function(p) rstan::Rhat(arr[, , p]), numeric(1))
draws <- as.matrix(fit)                   # named parameters (stanreg names)

# rstanarm renames the stanfit's parameters to the stanreg names (as.matrix(fit)),
# so the ESS and R-hat above are looked up by name
named_ess <- function(cols) sapply(cols, function(cc) if (cc %in% names(ess)) ess[[cc]] else NA_real_)
block <- function(prefix, rename = identity) {
  cols <- grep(prefix, colnames(draws), value = TRUE)
  m <- draws[, cols, drop = FALSE]
  q <- function(p) apply(m, 2, quantile, p)
  data.frame(term = rename(cols), stan_name = cols, mean = colMeans(m),
             sd = apply(m, 2, sd), q025 = q(0.025), q05 = q(0.05), q95 = q(0.95),
             q975 = q(0.975), ess_bulk = as.numeric(named_ess(cols)),
             rhat = as.numeric(rhat[cols]), row.names = NULL)
}
event <- block("^Event\\|", function(x) sub("^Event\\|", "", x))
event <- event[!grepl("Intercept|spline", event$term), ]
assoc <- block("^Assoc\\|", function(x) "value(alsfrs_r)")
long <- block("^Long1\\|", function(x) sub("^Long1\\|", "", x))
compared <- c(event$stan_name, assoc$stan_name)
sp <- rstan::get_sampler_params(fit$stanfit, inc_warmup = FALSE)

out <- list(
  data = list(patients = nrow(pats), visits = nrow(visits), events = sum(pats$death_imv)),
  settings = list(chains = n_chains, iter = n_iter, warmup = floor(n_iter / 2),
                  draws_per_chain = n_iter - floor(n_iter / 2), cores = 1, seed = seed,
                  assoc = "etavalue", basehaz = "bs (df = 6, stan_jm default)", qnodes = 15,
                  priors = "rstanarm defaults (autoscaled)"),
  event = event,
  association = assoc,
  longitudinal = long,
  min_ess_bulk_all = min(ess, na.rm = TRUE),
  min_ess_bulk_all_parameter = names(ess)[which.min(ess)],
  min_ess_bulk_compared = min(ess[compared]),
  max_rhat_all = max(rhat, na.rm = TRUE),
  n_parameters = length(pars),
  divergences = sum(vapply(sp, function(s) sum(s[, "divergent__"]), numeric(1))),
  seconds = list(stan_jm = t1 - t0),
  versions = list(R = R.version.string,
                  rstanarm = as.character(packageVersion("rstanarm")),
                  rstan = as.character(packageVersion("rstan")),
                  survival = as.character(packageVersion("survival")))
)
write_json(out, out_file, digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat(sprintf("stan_jm(): %.1f s; min bulk ESS %.0f (all, %s), %.0f (compared); max R-hat %.3f; %d divergences\n",
            t1 - t0, out$min_ess_bulk_all, out$min_ess_bulk_all_parameter,
            out$min_ess_bulk_compared, out$max_rhat_all, out$divergences))
print(rbind(event, assoc)[, c("term", "mean", "sd", "ess_bulk", "rhat")])
