# Reference fit for alsfrs.fit_joint: JMbayes2 on the simulated cohort in data/.
#
# Run from the repository root (after `python tests/reference/make_joint_data.py`):
#
#     Rscript tests/reference/joint_reference.R
#
# Fits the same joint model as tests/test_joint_validation.py with JMbayes2's
# defaults (3 chains x 3,500 iterations, 500 burn-in; penalised B-spline baseline):
#   longitudinal: lme(alsfrs_r ~ months * (anxiolytic + hypnotic + antidepressant +
#                 onset_site) + age_at_dx + sex, random = ~ months | patient_id)
#   survival:     coxph(Surv(months_to_death_imv, death_imv) ~ anxiolytic + hypnotic +
#                 antidepressant + age_at_dx + onset_site), functional form value(alsfrs_r)
# and writes joint_fixtures/jmbayes2_1000.json: posterior mean, SD, 2.5%/97.5%
# quantiles, R-hat and ESS (coda::effectiveSize over the pooled chains) of every
# survival coefficient and the association, the longitudinal fixed effects, the
# random-effects covariance and sigma, plus the wall time and package versions.
# The Python tests read only this file.

suppressPackageStartupMessages({
  library(nlme)
  library(survival)
  library(JMbayes2)
  library(jsonlite)
  library(coda)
})

args <- commandArgs(trailingOnly = FALSE)
file_arg <- sub("^--file=", "", args[grep("^--file=", args)])
here <- if (length(file_arg)) dirname(normalizePath(file_arg)) else "tests/reference"
data_dir <- file.path(here, "data")
out_dir <- file.path(here, "joint_fixtures")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
n_patients <- as.integer(Sys.getenv("JOINT_N", "1000"))

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
lme_fit <- lme(alsfrs_r ~ months * (anxiolytic + hypnotic + antidepressant + onset_site) +
                 age_at_dx + sex,
               random = ~ months | patient_id, data = visits,
               control = lmeControl(opt = "optim"))
cox_fit <- coxph(Surv(months_to_death_imv, death_imv) ~ anxiolytic + hypnotic +
                   antidepressant + age_at_dx + onset_site, data = pats)
t1 <- proc.time()[["elapsed"]]
jm_fit <- jm(cox_fit, lme_fit, time_var = "months",
             functional_forms = ~ value(alsfrs_r), seed = 20251123L)
t2 <- proc.time()[["elapsed"]]

block <- function(name) {
  m <- jm_fit$mcmc[[name]]
  if (is.null(m)) return(NULL)
  pooled <- do.call(rbind, lapply(m, as.matrix))
  ess <- coda::effectiveSize(coda::as.mcmc.list(lapply(m, coda::as.mcmc)))
  rhat <- tryCatch(coda::gelman.diag(coda::as.mcmc.list(lapply(m, coda::as.mcmc)),
                                     autoburnin = FALSE, multivariate = FALSE)$psrf[, 1],
                   error = function(e) rep(NA_real_, ncol(pooled)))
  data.frame(term = colnames(pooled), mean = colMeans(pooled), sd = apply(pooled, 2, sd),
             q025 = apply(pooled, 2, quantile, 0.025), q975 = apply(pooled, 2, quantile, 0.975),
             ess = as.numeric(ess), rhat = as.numeric(rhat), row.names = NULL)
}

out <- list(
  data = list(patients = nrow(pats), visits = nrow(visits), events = sum(pats$death_imv)),
  settings = list(n_chains = jm_fit$control$n_chains, n_iter = jm_fit$control$n_iter,
                  n_burnin = jm_fit$control$n_burnin, n_thin = jm_fit$control$n_thin,
                  baseline = "penalised B-spline (JMbayes2 default)"),
  gammas = block("gammas"),
  alphas = block("alphas"),
  betas = block("betas1"),
  D = block("D"),
  sigmas = block("sigmas"),
  seconds = list(lme_cox = t1 - t0, jm = t2 - t1),
  versions = list(R = R.version.string,
                  JMbayes2 = as.character(packageVersion("JMbayes2")),
                  nlme = as.character(packageVersion("nlme")),
                  survival = as.character(packageVersion("survival")))
)
write_json(out, file.path(out_dir, sprintf("jmbayes2_%d.json", n_patients)), digits = NA,
           auto_unbox = TRUE, pretty = TRUE)
cat(sprintf("JMbayes2 jm(): %.1f s\n", t2 - t1))
print(out$gammas)
print(out$alphas)
