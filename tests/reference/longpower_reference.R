# Reference numbers for alsfrs.design.formulas: R longpower 1.0.27.
#
# Run from the repository root:
#
#     Rscript tests/reference/longpower_reference.R
#
# Writes tests/reference/longpower_fixtures/longpower_cases.json: one record per
# call with its inputs in alsfrs's terms (method, what is solved for, visit
# times, variance parameters, allocation ratio, attrition pattern, alpha,
# alternative) and longpower's answer (n per group, power, delta). The cases are
# longpower's own worked examples (the ADAS-Cog example of the vignette and help
# pages, the sleepstudy lmer pilot, Diggle's exchangeable table, the Hu-Mackey-
# Thomas and CPRM examples) plus ALS-shaped designs with attrition and unequal
# allocation. The Python tests read only the JSON; R is not needed to test.

suppressPackageStartupMessages({
  library(longpower)
  library(lme4)
  library(jsonlite)
})
stopifnot(as.character(packageVersion("longpower")) == "1.0.27")

args <- commandArgs(trailingOnly = FALSE)
file_arg <- sub("^--file=", "", args[grep("^--file=", args)])
here <- if (length(file_arg)) dirname(normalizePath(file_arg)) else "tests/reference"
out_dir <- file.path(here, "longpower_fixtures")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

cases <- list()
add <- function(name, call, method, solve, t, pars, res, lambda = 1, p = NULL,
                alternative = "two.sided", sig.level = 0.05, power = NULL, delta = NULL,
                n = NULL, effect_scale = 1) {
  # res: a longpower "power.longtest" object
  cases[[length(cases) + 1]] <<- list(
    name = name, call = call, method = method, solve = solve, t = t,
    sig2_i = pars$sig2_i, sig2_s = pars$sig2_s, cov_si = pars$cov_si, sig2_e = pars$sig2_e,
    ratio = lambda, p = if (is.null(p)) NA else p, alternative = alternative,
    alpha = sig.level, power_in = if (is.null(power)) NA else power,
    delta_in = if (is.null(delta)) NA else delta, n_in = if (is.null(n)) NA else n,
    effect_scale = effect_scale,
    n1 = res$n[1], n2 = res$n[2], power = res$power, delta = res$delta)
}

# --- the ADAS-Cog example (vignette; lmmpower help page) --------------------------------
t <- seq(0, 1.5, 0.25)
adas <- list(sig2_i = 55, sig2_s = 24, cov_si = 0.8 * sqrt(55) * sqrt(24), sig2_e = 10)
for (m in c("diggle", "liuliang", "edland")) {
  r <- lmmpower(delta = 1.5, t = t, sig2.i = 55, sig2.s = 24, sig2.e = 10,
                cov.s.i = 0.8 * sqrt(55) * sqrt(24), power = 0.80, method = m)
  add(paste0("adas_", m, "_n"), "lmmpower(delta=1.5, ...)", m, "n", t, adas, r, power = 0.8,
      delta = 1.5)
  r <- lmmpower(n = 208, t = t, sig2.i = 55, sig2.s = 24, sig2.e = 10,
                cov.s.i = 0.8 * sqrt(55) * sqrt(24), power = 0.80, method = m)
  add(paste0("adas_", m, "_delta"), "lmmpower(n=208, ...)", m, "effect", t, adas, r,
      power = 0.8, n = 208)
}
r <- lmmpower(delta = 1.5, t = t, sig2.i = 55, sig2.s = 24, sig2.e = 10, cor.s.i = 0.8,
              p = c(rep(0, 6), 1), power = 0.80, method = "hu")
add("adas_hu_n", "lmmpower(delta=1.5, cor.s.i=0.8, method='hu')", "hu", "n", t, adas, r,
    power = 0.8, delta = 1.5)
r <- lmmpower(n = 208, t = t, sig2.i = 55, sig2.s = 24, sig2.e = 10, cor.s.i = 0.8,
              p = c(rep(0, 6), 1), power = 0.80, method = "hu")
add("adas_hu_delta", "lmmpower(n=208, cor.s.i=0.8, method='hu')", "hu", "effect", t, adas, r,
    power = 0.8, n = 208)

# Hu, Mackey & Thomas help page (random coefficient regression model, RCRM)
rc <- list(sig2_i = 0, sig2_s = 24, cov_si = 0, sig2_e = 10)
pl <- c(rep(0, 6), 1)
r <- hu.mackey.thomas.linear.power(delta = 1.5, t = t, sig2.s = 24, sig2.e = 10, cor.s.i = 0.5,
                                   p = pl, power = 0.80)
add("rcrm_hu_n", "hu.mackey.thomas.linear.power(delta=1.5, ...)", "hu", "n", t, rc, r,
    power = 0.8, delta = 1.5)
r <- hu.mackey.thomas.linear.power(n = 180, delta = 1.5, t = t, sig2.s = 24, sig2.e = 10,
                                   cor.s.i = 0.5, p = pl)
add("rcrm_hu_power", "hu.mackey.thomas.linear.power(n=180, delta=1.5)", "hu", "power", t, rc,
    r, delta = 1.5, n = 180)
r <- hu.mackey.thomas.linear.power(delta = 1.5, t = t, lambda = 2, sig2.s = 24, sig2.e = 10,
                                   cor.s.i = 0.5, p = pl, power = 0.80)
add("rcrm_hu_lambda2_n", "hu.mackey.thomas.linear.power(lambda=2)", "hu", "n", t, rc, r,
    lambda = 2, power = 0.8, delta = 1.5)
r <- hu.mackey.thomas.linear.power(n = 142, t = t, sig2.s = 24, sig2.e = 10, cor.s.i = 0.5,
                                   p = pl, power = 0.80, alternative = "one.sided")
add("rcrm_hu_onesided_delta", "hu.mackey.thomas.linear.power(n=142, one.sided)", "hu",
    "effect", t, rc, r, power = 0.8, n = 142, alternative = "one.sided")
pt <- t / sum(t)
r <- hu.mackey.thomas.linear.power(delta = 1.5, t = t, sig2.s = 24, sig2.e = 10, cor.s.i = 0.5,
                                   p = pt, power = 0.80)
add("hu_attrition_t_over_sum_n", "hu.mackey.thomas.linear.power(p=t/sum(t))", "hu", "n", t,
    rc, r, p = pt, power = 0.8, delta = 1.5)

# Edland help page
r <- edland.linear.power(delta = 1.5, t = t, sig2.s = 24, sig2.e = 10, sig.level = 0.05,
                         power = 0.80)
add("edland_help_n", "edland.linear.power(delta=1.5, sig2.s=24, sig2.e=10)", "edland", "n", t,
    rc, r, power = 0.8, delta = 1.5)

# CPRM (Zhao & Edland): help page and their Table 3
r <- cprm.power(delta = 1.5, t = t, sig2.s = 24, sig2.e = 10, sig.level = 0.05, power = 0.80)
add("cprm_help_n", "cprm.power(delta=1.5, ...)", "cprm", "n", t, rc, r, power = 0.8,
    delta = 1.5, effect_scale = 1.5)
ze <- list(sig2_i = 55.45902, sig2_s = 15.44793, cov_si = 13.58123, sig2_e = 13.63768)
r <- cprm.power(n = 80, t = 0:6 * .25, delta = 3.488879, sig2.int = 55.45902,
                sig.b0b1 = 13.58123, sig2.s = 15.44793, sig2.e = 13.63768)
add("cprm_table3_power", "cprm.power(n=80, delta=3.488879, ...)", "cprm", "power", t, ze, r,
    delta = 3.488879, n = 80, effect_scale = 1.5)

# Diggle's exchangeable-correlation table (p. 29): one-sided, rho = 0.5, sigma2 = 200
ex <- list(sig2_i = 0.5 * 200, sig2_s = 0, cov_si = 0, sig2_e = 0.5 * 200)
r <- diggle.linear.power(d = 0.5, t = c(0, 2, 5), sigma2 = 200, R = 0.5,
                         alternative = "one.sided", power = 0.80)
add("diggle_table_rho05_s200", "diggle.linear.power(d=0.5, R=0.5, sigma2=200, one.sided)",
    "diggle", "n", c(0, 2, 5), ex, r, power = 0.8, delta = 0.5, alternative = "one.sided")

# --- sleepstudy: lmmpower reads an lmer fit -----------------------------------------------
fm1 <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
vc <- VarCorr(fm1)[[1]]
ss <- list(sig2_i = vc[1, 1], sig2_s = vc[2, 2], cov_si = vc[2, 1],
           sig2_e = getME(fm1, "sigma")^2)
beta <- fixef(fm1)[["Days"]]
for (m in c("diggle", "liuliang", "edland")) {
  r <- lmmpower(fm1, pct.change = 0.30, t = seq(0, 9, 1), power = 0.80, method = m)
  add(paste0("sleepstudy_", m, "_n"), "lmmpower(fm1, pct.change=0.30)", m, "n", 0:9, ss, r,
      power = 0.8, delta = 0.3 * beta)
}
r <- lmmpower(fm1, pct.change = 0.30, t = seq(0, 9, 1), p = c(rep(0, 9), 1), power = 0.80,
              method = "hu")
add("sleepstudy_hu_n", "lmmpower(fm1, pct.change=0.30, method='hu')", "hu", "n", 0:9, ss, r,
    power = 0.8, delta = 0.3 * beta)
sleep_pilot <- c(ss, list(slope = beta))

# --- ALS-shaped designs: PRO-ACT-like pilot, visits every 3 months for a year -------------
tm <- c(0, 3, 6, 9, 12)
als <- list(sig2_i = 5.2^2, sig2_s = 0.7^2, cov_si = -0.2 * 5.2 * 0.7, sig2_e = 1.68^2)
slope <- -0.95
d25 <- 0.25 * abs(slope)
pa <- c(0.0625, 0.0625, 0.125, 0.125, 0.625)  # 37.5 % do not complete (sums to 1 exactly)
r <- edland.linear.power(delta = d25, t = tm, sig2.int = als$sig2_i, sig2.s = als$sig2_s,
                         sig.b0b1 = als$cov_si, sig2.e = als$sig2_e, power = 0.8)
add("als_edland_complete_n", "edland.linear.power(complete)", "edland", "n", tm, als, r,
    power = 0.8, delta = d25)
r <- edland.linear.power(delta = d25, t = tm, sig2.int = als$sig2_i, sig2.s = als$sig2_s,
                         sig.b0b1 = als$cov_si, sig2.e = als$sig2_e, p = pa, power = 0.8)
add("als_edland_attrition_n", "edland.linear.power(p=attrition)", "edland", "n", tm, als, r,
    p = pa, power = 0.8, delta = d25)
r <- edland.linear.power(delta = d25, t = tm, sig2.int = als$sig2_i, sig2.s = als$sig2_s,
                         sig.b0b1 = als$cov_si, sig2.e = als$sig2_e, p = pa, power = 0.9,
                         lambda = 2)
add("als_edland_attrition_ratio2_n", "edland.linear.power(p, lambda=2, power=0.9)", "edland",
    "n", tm, als, r, p = pa, lambda = 2, power = 0.9, delta = d25)
r <- edland.linear.power(n = 150, delta = d25, t = tm, sig2.int = als$sig2_i,
                         sig2.s = als$sig2_s, sig.b0b1 = als$cov_si, sig2.e = als$sig2_e,
                         p = pa)
add("als_edland_attrition_power", "edland.linear.power(n=150, p)", "edland", "power", tm, als,
    r, p = pa, delta = d25, n = 150)
r <- edland.linear.power(n = 150, power = 0.8, t = tm, sig2.int = als$sig2_i,
                         sig2.s = als$sig2_s, sig.b0b1 = als$cov_si, sig2.e = als$sig2_e,
                         p = pa, alternative = "one.sided")
add("als_edland_attrition_delta_onesided", "edland.linear.power(n=150, p, one.sided)",
    "edland", "effect", tm, als, r, p = pa, power = 0.8, n = 150, alternative = "one.sided")
r <- edland.linear.power(delta = 0.2 * abs(slope), t = tm, sig2.int = als$sig2_i,
                         sig2.s = als$sig2_s, sig.b0b1 = als$cov_si, sig2.e = als$sig2_e,
                         p = pa, power = 0.8, sig.level = 0.01)
add("als_edland_attrition_20pct_alpha01_n", "edland.linear.power(20%, alpha=0.01)", "edland",
    "n", tm, als, r, p = pa, power = 0.8, delta = 0.2 * abs(slope), sig.level = 0.01)
r <- hu.mackey.thomas.linear.power(delta = d25, t = tm, sig2.i = als$sig2_i,
                                   sig2.s = als$sig2_s, sig2.e = als$sig2_e,
                                   cor.s.i = als$cov_si / sqrt(als$sig2_i * als$sig2_s),
                                   p = pa, power = 0.8)
add("als_hu_attrition_n", "hu.mackey.thomas.linear.power(p=attrition)", "hu", "n", tm, als, r,
    p = pa, power = 0.8, delta = d25)
r <- hu.mackey.thomas.linear.power(n = 150, delta = d25, t = tm, sig2.i = als$sig2_i,
                                   sig2.s = als$sig2_s, sig2.e = als$sig2_e,
                                   cor.s.i = als$cov_si / sqrt(als$sig2_i * als$sig2_s),
                                   p = pa, lambda = 2)
add("als_hu_attrition_ratio2_power", "hu.mackey.thomas.linear.power(n=150, lambda=2)", "hu",
    "power", tm, als, r, p = pa, lambda = 2, delta = d25, n = 150)
for (m in c("diggle", "liuliang")) {
  r <- lmmpower(delta = d25, t = tm, sig2.i = als$sig2_i, sig2.s = als$sig2_s,
                sig2.e = als$sig2_e, cov.s.i = als$cov_si, power = 0.80, method = m)
  add(paste0("als_", m, "_n"), "lmmpower(delta=25% slowing)", m, "n", tm, als, r, power = 0.8,
      delta = d25)
  r <- lmmpower(n = 150, delta = d25, t = tm, sig2.i = als$sig2_i, sig2.s = als$sig2_s,
                sig2.e = als$sig2_e, cov.s.i = als$cov_si, power = NULL, method = m)
  add(paste0("als_", m, "_power"), "lmmpower(n=150, delta)", m, "power", tm, als, r,
      delta = d25, n = 150)
}
# Liu & Liang with 2:1 allocation (Pi = proportions treated, control)
V <- outer(tm, tm, function(a, b) als$sig2_i + a * b * als$sig2_s + (a + b) * als$cov_si) +
  diag(als$sig2_e, length(tm))
r <- liu.liang.linear.power(delta = d25, u = list(u1 = tm, u2 = rep(0, 5)),
                            v = list(v1 = cbind(1, 1, tm), v2 = cbind(1, 0, tm)), R = V,
                            Pi = c(2 / 3, 1 / 3), power = 0.8)
add("als_liuliang_ratio2_n", "liu.liang.linear.power(Pi=c(2/3,1/3))", "liuliang", "n", tm, als,
    r, lambda = 2, power = 0.8, delta = d25)
r <- cprm.power(delta = d25 * 12, t = tm, sig2.int = als$sig2_i, sig2.s = als$sig2_s,
                sig.b0b1 = als$cov_si, sig2.e = als$sig2_e, p = pa, power = 0.8)
add("als_cprm_attrition_n", "cprm.power(p=attrition)", "cprm", "n", tm, als, r, p = pa,
    power = 0.8, delta = d25 * 12, effect_scale = 12)

out <- list(longpower = as.character(packageVersion("longpower")),
            R = R.version.string, sleepstudy_pilot = sleep_pilot, cases = cases)
write_json(out, file.path(out_dir, "longpower_cases.json"), auto_unbox = TRUE, digits = NA,
           pretty = TRUE, na = "null")
cat("wrote", length(cases), "cases\n")
