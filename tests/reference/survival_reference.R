# Reference numbers for alsfrs.survival: R survival (coxph, cox.zph, survfit,
# survdiff, clogit, basehaz, concordance) and MatchIt (nearest-neighbour matching).
#
# Run from the repository root (after `python tests/reference/make_survival_datasets.py`):
#
#     Rscript tests/reference/survival_reference.R
#
# Writes survival_data/lung.csv and survival_data/veteran.csv (R's own data sets,
# lung's status recoded 0/1 and complete cases of the columns used) and one JSON
# file per analysis to survival_fixtures/. The Python tests read only these files.
# Cox fits use a tight convergence tolerance (eps = 1e-12) so that the fixtures
# are the maximum itself, not R's default stopping point (1e-9 in the log-likelihood).

suppressPackageStartupMessages({
  library(survival)
  library(MatchIt)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = FALSE)
file_arg <- sub("^--file=", "", args[grep("^--file=", args)])
here <- if (length(file_arg)) dirname(normalizePath(file_arg)) else "tests/reference"
data_dir <- file.path(here, "survival_data")
out_dir <- file.path(here, "survival_fixtures")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

versions <- list(R = R.version.string,
                 survival = as.character(packageVersion("survival")),
                 MatchIt = as.character(packageVersion("MatchIt")))
ctrl <- coxph.control(eps = 1e-12, toler.chol = 1e-15, iter.max = 100)

save <- function(rec, name) {
  rec$versions <- versions
  write_json(rec, file.path(out_dir, paste0(name, ".json")), digits = NA,
             auto_unbox = TRUE, pretty = TRUE, na = "null")
}

# -- R's data sets ---------------------------------------------------------------------
l <- survival::lung
l <- l[complete.cases(l[, c("time", "status", "age", "sex", "ph.ecog", "wt.loss")]), ]
write.csv(data.frame(time = l$time, status = as.integer(l$status == 2), age = l$age,
                     sex = ifelse(l$sex == 1, "M", "F"), ph_ecog = l$ph.ecog,
                     wt_loss = l$wt.loss, inst = ifelse(is.na(l$inst), 0, l$inst)),
          file.path(data_dir, "lung.csv"), row.names = FALSE)
v <- survival::veteran
write.csv(data.frame(time = v$time, status = v$status, trt = v$trt,
                     celltype = as.character(v$celltype), karno = v$karno,
                     diagtime = v$diagtime, age = v$age, prior = v$prior),
          file.path(data_dir, "veteran.csv"), row.names = FALSE)

lung <- read.csv(file.path(data_dir, "lung.csv"))
lung$sex <- factor(lung$sex, levels = c("F", "M"))
veteran <- read.csv(file.path(data_dir, "veteran.csv"))
veteran$celltype <- factor(veteran$celltype, levels = c("adeno", "large", "smallcell", "squamous"))
cohort <- read.csv(file.path(data_dir, "cohort_survival.csv"))
cohort$sex <- factor(cohort$sex, levels = c("F", "M"))
cohort$onset_site <- factor(cohort$onset_site, levels = c("spinal", "bulbar"))
tv <- read.csv(file.path(data_dir, "cohort_timevarying.csv"))
tv$sex <- factor(tv$sex, levels = c("F", "M"))
tv$onset_site <- factor(tv$onset_site, levels = c("spinal", "bulbar"))

# -- Cox -------------------------------------------------------------------------------
cox_record <- function(fit, data, formula_py, newdata = NULL, times = NULL) {
  s <- summary(fit)
  zph <- cox.zph(fit)
  bh <- basehaz(fit, centered = FALSE)
  rec <- list(
    formula = formula_py, ties = fit$method, n = fit$n, nevent = fit$nevent,
    coef = as.list(coef(fit)), se = as.list(sqrt(diag(if (is.null(fit$naive.var)) fit$var
                                                      else fit$naive.var))),
    loglik = fit$loglik, score = unname(fit$score), wald = unname(fit$wald.test),
    lr = unname(2 * diff(fit$loglik)),
    concordance = unname(concordance(fit)$concordance),
    zph = list(term = rownames(zph$table), chisq = unname(zph$table[, "chisq"]),
               df = unname(zph$table[, "df"]), p = unname(zph$table[, "p"])),
    basehaz = list(time = bh$time, hazard = bh$hazard,
                   strata = if (is.null(bh$strata)) rep("all", nrow(bh)) else as.character(bh$strata))
  )
  if (!is.null(fit$naive.var)) {
    rec$robust_se <- as.list(sqrt(diag(fit$var)))
    rec$robust_wald <- unname(fit$wald.test)
  }
  if (!is.null(newdata)) {
    sf <- survfit(fit, newdata = newdata)
    ss <- summary(sf, times = times, extend = TRUE)
    rec$predicted <- list(times = times, surv = unname(as.matrix(ss$surv)),
                          std_err = unname(as.matrix(ss$std.err)),
                          lower = unname(as.matrix(ss$lower)),
                          upper = unname(as.matrix(ss$upper)))
  }
  rec
}

f1 <- coxph(Surv(time, status) ~ age + sex + ph_ecog + wt_loss, data = lung, control = ctrl)
save(cox_record(f1, lung, "Surv(time, status) ~ age + sex + ph_ecog + wt_loss",
                newdata = lung[1:3, ], times = c(100, 365, 700)), "cox_lung_efron")
f2 <- coxph(Surv(time, status) ~ age + sex + ph_ecog + wt_loss, data = lung, ties = "breslow",
            control = ctrl)
save(cox_record(f2, lung, "Surv(time, status) ~ age + sex + ph_ecog + wt_loss"),
     "cox_lung_breslow")
f3 <- coxph(Surv(time, status) ~ age + sex + ph_ecog + cluster(inst), data = lung, control = ctrl)
save(cox_record(f3, lung, "Surv(time, status) ~ age + sex + ph_ecog + cluster(inst)"),
     "cox_lung_cluster")
f4 <- coxph(Surv(time, status) ~ karno + celltype + age + strata(trt), data = veteran,
            control = ctrl)
save(cox_record(f4, veteran, "Surv(time, status) ~ karno + celltype + age + strata(trt)"),
     "cox_veteran_strata")
f5 <- coxph(Surv(months, event) ~ anxiolytic + hypnotic + antidepressant + age_at_dx + sex +
              onset_site, data = cohort, control = ctrl)
save(cox_record(f5, cohort, paste("Surv(months, event) ~ anxiolytic + hypnotic + antidepressant",
                                  "+ age_at_dx + sex + onset_site"),
                newdata = cohort[1:4, ], times = c(6, 12, 24, 36)), "cox_cohort_efron")
f6 <- coxph(Surv(months, event) ~ anxiolytic + hypnotic + antidepressant + age_at_dx + sex +
              onset_site, data = cohort, ties = "breslow", control = ctrl)
save(cox_record(f6, cohort, paste("Surv(months, event) ~ anxiolytic + hypnotic + antidepressant",
                                  "+ age_at_dx + sex + onset_site")), "cox_cohort_breslow")
f7 <- coxph(Surv(start, stop, event) ~ riluzole + age_at_dx + sex + onset_site +
              cluster(patient_id), data = tv, control = ctrl)
save(cox_record(f7, tv, paste("Surv(start, stop, event) ~ riluzole + age_at_dx + sex +",
                              "onset_site + cluster(patient_id)")), "cox_cohort_timevarying")
f8 <- coxph(Surv(months, event) ~ antidepressant + age_at_dx + strata(onset_site),
            data = cohort, robust = TRUE, control = ctrl)
save(cox_record(f8, cohort, "Surv(months, event) ~ antidepressant + age_at_dx + strata(onset_site)"),
     "cox_cohort_robust_strata")
# predicted curves with intervals for one new patient per stratum (robust variance)
nd <- cohort[c(1, which(cohort$onset_site == "bulbar")[1]), ]
pr <- lapply(seq_len(nrow(nd)), function(i) {
  ss <- summary(survfit(f8, newdata = nd[i, ]), times = c(6, 12, 24), extend = TRUE)
  list(row = i - 1, onset_site = as.character(nd$onset_site[i]), times = ss$time,
       surv = ss$surv, std_err = ss$std.err, lower = ss$lower, upper = ss$upper)
})
save(list(formula = "Surv(months, event) ~ antidepressant + age_at_dx + strata(onset_site)",
          rows = c(0, which(cohort$onset_site == "bulbar")[1] - 1), curves = pr),
     "cox_cohort_strata_predicted")

# -- Kaplan-Meier and log-rank ----------------------------------------------------------
km_record <- function(fit, formula_py, times, sd = NULL) {
  s <- summary(fit, censored = TRUE)
  st <- if (is.null(s$strata)) rep("all", length(s$time)) else as.character(s$strata)
  at <- summary(fit, times = times, extend = TRUE)
  ast <- if (is.null(at$strata)) rep("all", length(at$time)) else as.character(at$strata)
  tab <- summary(fit)$table
  if (is.null(dim(tab))) tab <- t(as.matrix(tab))
  rec <- list(
    formula = formula_py,
    curve = list(strata = st, time = s$time, n_risk = s$n.risk, n_event = s$n.event,
                 surv = s$surv, std_err = s$std.err, lower = s$lower, upper = s$upper),
    at = list(strata = ast, time = at$time, surv = at$surv, lower = at$lower,
              upper = at$upper, n_risk = at$n.risk),
    median = list(strata = if (nrow(tab) > 1) rownames(tab) else "all",
                  median = unname(tab[, "median"]), lcl = unname(tab[, "0.95LCL"]),
                  ucl = unname(tab[, "0.95UCL"]))
  )
  if (!is.null(sd)) {
    rec$logrank <- list(chisq = sd$chisq, df = length(sd$n) - 1, observed = unname(sd$obs),
                        expected = unname(sd$exp))
  }
  rec
}
k1 <- survfit(Surv(time, status) ~ sex, data = lung)
save(km_record(k1, "Surv(time, status) ~ sex", c(0, 100, 365, 500, 2000),
               survdiff(Surv(time, status) ~ sex, data = lung)), "km_lung_sex")
k2 <- survfit(Surv(time, status) ~ celltype, data = veteran)
save(km_record(k2, "Surv(time, status) ~ celltype", c(30, 90, 180),
               survdiff(Surv(time, status) ~ celltype, data = veteran)), "km_veteran_celltype")
k3 <- survfit(Surv(months, event) ~ antidepressant, data = cohort)
save(km_record(k3, "Surv(months, event) ~ antidepressant", c(6, 12, 24, 48),
               survdiff(Surv(months, event) ~ antidepressant, data = cohort)),
     "km_cohort_antidepressant")
k4 <- survfit(Surv(months, event) ~ 1, data = cohort)
save(km_record(k4, "Surv(months, event) ~ 1", c(12, 24)), "km_cohort_all")

# -- conditional logistic regression -----------------------------------------------------
clogit_record <- function(fit, formula_py) {
  s <- summary(fit)
  list(formula = formula_py, coef = as.list(coef(fit)), se = as.list(sqrt(diag(fit$var))),
       loglik = fit$loglik, lr = unname(2 * diff(fit$loglik)), wald = unname(fit$wald.test),
       score = unname(fit$score), n = fit$n, nevent = fit$nevent)
}
cc <- read.csv(file.path(data_dir, "case_control.csv"))
xcols <- setdiff(names(cc), c("set_id", "patient_id", "case"))
fcc <- as.formula(paste("case ~", paste(xcols, collapse = " + "), "+ strata(set_id)"))
c1 <- clogit(fcc, data = cc, control = ctrl)
save(clogit_record(c1, paste("case ~", paste(xcols, collapse = " + "), "+ strata(set_id)")),
     "clogit_case_control")
ccm <- read.csv(file.path(data_dir, "case_control_multi.csv"))
c2 <- clogit(fcc, data = ccm, method = "exact", control = ctrl)
save(clogit_record(c2, paste("case ~", paste(xcols, collapse = " + "), "+ strata(set_id)")),
     "clogit_case_control_multi")

# -- REM comparison: MatchIt nearest neighbour on the logit propensity -------------------
rem <- read.csv(file.path(data_dir, "rem.csv"))
rem$sex <- factor(rem$sex, levels = c("F", "M"))
# MatchIt 4.5.1 (Debian) compares distances with an integer abs() on this build: a
# caliper below 1 on the distance scale is silently ignored and the left neighbour always
# wins. Giving it the logit propensity (glm, as distance = "glm", link = "linear.logit")
# scaled by 1e8 makes the truncation immaterial; the standardised caliper (0.2 SD), the
# matching order (largest first) and the standardised mean differences are unchanged.
ps_fit <- glm(non_rem_suppressing ~ age_at_dx + sex, data = rem, family = binomial,
              control = glm.control(epsilon = 1e-14, maxit = 100))
lp <- unname(ps_fit$linear.predictors)
m <- matchit(non_rem_suppressing ~ age_at_dx + sex, data = rem, method = "nearest",
             distance = 1e8 * lp, caliper = 0.2, std.caliper = TRUE)
md <- match.data(m)
sm <- summary(m)
crude <- coxph(Surv(months, event) ~ non_rem_suppressing, data = rem, control = ctrl)
matched <- coxph(Surv(months, event) ~ non_rem_suppressing, data = md, cluster = subclass,
                 control = ctrl)
km_c <- summary(survfit(Surv(months, event) ~ non_rem_suppressing, data = rem), times = 24)
km_m <- summary(survfit(Surv(months, event) ~ non_rem_suppressing, data = md), times = 24)
save(list(
  distance = lp, caliper = unname(m$caliper) / 1e8,
  n_unmatched_treated = unname(sum(rem$non_rem_suppressing) - sum(md$non_rem_suppressing)),
  matched_ids = md$patient_id, subclass = as.integer(as.character(md$subclass)),
  smd_before = as.list(sm$sum.all[, "Std. Mean Diff."]),
  smd_after = as.list(sm$sum.matched[, "Std. Mean Diff."]),
  crude = list(coef = unname(coef(crude)), se = unname(sqrt(diag(crude$var)))),
  matched = list(coef = unname(coef(matched)), robust_se = unname(sqrt(diag(matched$var))),
                 se = unname(sqrt(diag(matched$naive.var)))),
  survival_24 = list(crude = km_c$surv, crude_strata = as.character(km_c$strata),
                     matched = km_m$surv, matched_strata = as.character(km_m$strata))
), "rem_matchit")

cat("fixtures written to", out_dir, "\n")
